@echo off
rem 4) data_src faceset extract: detect, align and save the faces of the data_src frames into
rem data_src/aligned. Asks face type, image size and jpeg quality.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" extract ^
    --input-dir "%WORKSPACE%\data_src" ^
    --output-dir "%WORKSPACE%\data_src\aligned" ^
    --detector centerface ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
