@echo off
rem 4.2) data_src util faceset pack: pack data_src/aligned into one faceset.pak (training reads it
rem directly).
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" util ^
    --input-dir "%WORKSPACE%\data_src\aligned" ^
    --pack-faceset ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
