@echo off
rem 1) clear workspace: delete data_src, data_dst and model in the workspace and make them again, empty.
rem The data_src.* and data_dst.* videos (and result videos) stay. Asks first.
rem set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
set "ANSWER=n"
set /p "ANSWER=Delete data_src, data_dst and model in %WORKSPACE%? (y/n) [n]: "
if /i not "%ANSWER%"=="y" if /i not "%ANSWER%"=="yes" (echo Nothing deleted. & pause & exit /b 0)
if exist "%WORKSPACE%\data_src" rmdir /s /q "%WORKSPACE%\data_src"
if exist "%WORKSPACE%\data_dst" rmdir /s /q "%WORKSPACE%\data_dst"
if exist "%WORKSPACE%\model" rmdir /s /q "%WORKSPACE%\model"
mkdir "%WORKSPACE%\data_src\aligned"
mkdir "%WORKSPACE%\data_dst\aligned"
mkdir "%WORKSPACE%\model"
echo Workspace cleared: "%WORKSPACE%"
pause
